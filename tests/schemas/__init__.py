"""The message structs: protocol, inference, model configs, the registry, JSON Schema export,
the reference specs and the example frames, exceptions, utils, hardware figures."""
