"""The no-radio Bluetooth path: BlueZ emulated by bluezoo on a private D-Bus, peripherals as GATT applications."""
