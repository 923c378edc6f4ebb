"""`cabine demo`: a signaling server and one cabin in one process, with emulated devices swapped in."""
