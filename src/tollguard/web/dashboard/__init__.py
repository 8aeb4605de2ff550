"""The operators' dashboard: traffic, quality, margin and security events as charts."""
