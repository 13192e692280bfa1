"""Model backends: what scores a query with an adapter (PEFT in-process today), and the adapter checks made before anything loads."""
