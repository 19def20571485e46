"""Models of this app arrive with their issue; the app is installed so its schema slot exists."""
