"""Message schemas: ``protocol`` (backend) and ``inference`` (workers), as msgspec Structs."""
