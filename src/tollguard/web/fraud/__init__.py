"""Fraud rules, the SIP shield's ban list, suspensions and fraud events."""
