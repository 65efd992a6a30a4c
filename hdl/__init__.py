"""Amaranth hardware of the CNN accelerator: one module per hardware unit."""
