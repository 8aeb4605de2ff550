"""Carriers app: providers (the carriers calls are sold to) and their SIP gateways."""
