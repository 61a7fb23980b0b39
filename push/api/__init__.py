"""The push REST API: thin views that validate, call one service, and render."""
