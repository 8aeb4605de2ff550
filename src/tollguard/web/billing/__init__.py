"""Money: the ledger, balances, and low-balance alerts (docs/billing.md)."""
