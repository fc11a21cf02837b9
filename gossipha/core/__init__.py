"""Pure cluster logic: no sockets, no asyncio, no clock reads; time arrives as an argument."""
