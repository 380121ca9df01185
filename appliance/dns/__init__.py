"""The DNS filter: an asyncio server that answers every device's names per its profile."""
