"""The UI's routers, one per kind of resource: pages, exports, live feeds, JSON API, login."""
