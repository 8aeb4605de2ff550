"""Pure business rules: numbers, routing, rating, CDRs. No I/O, no Django, no asyncio."""
