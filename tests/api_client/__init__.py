"""The API client (``oasst_shared.api_client``): unit tests, answers through ``httpx.MockTransport``,
socket-level faults and chaos against scripted servers, the blocking facade, and every endpoint
against prism serving the backend's OpenAPI document."""
