"""Cabine gateway: the cabin PC's side of a teleconsultation or visio appointment."""
