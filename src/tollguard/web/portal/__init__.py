"""The customer portal: a customer's own CDRs, rate card, SIP credentials and API keys."""
