"""Security app: the hardening around the admin and the API.

Honeypot and ban list, address and country rules, mandatory two-factor sign-in for
staff, session lifetime, security headers, roles, the audit trail, security events on
the ``tollguard.security`` logger, system checks and the self-check behind
``tollguard check``. ``docs/security.md`` describes each protection.
"""
