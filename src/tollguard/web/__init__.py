"""The Django project: the single store of Tollguard's configuration and CDRs.

``bootstrap.setup()`` configures Django for a data directory; ``adapters`` implements
the domain ports (``PlanSource``, ``CdrSink``) on top of the ORM; ``provisioning``
loads a declarative YAML plan.
"""
