"""The front door: HAProxy in front of the API's processes (and, next, the apps' edge)."""
