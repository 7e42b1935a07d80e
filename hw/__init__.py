"""Amaranth gateware of the logic die and the definitions every layer shares."""
