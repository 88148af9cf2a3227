"""The routers: photos, video jobs, the live stream, the page."""
