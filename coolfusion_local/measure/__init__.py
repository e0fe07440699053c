"""Measurement: `eval` (accuracy on GSM8K, per mode) and `bench` (speed and memory), and their tables."""
