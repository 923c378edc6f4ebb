"""Cabine signaling server: links, rooms, relay of negotiation between a professional and a cabin."""
