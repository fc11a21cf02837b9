"""The asyncio runtime that drives the core."""
