"""Server-rendered pages of the push app: the Console's app pages and the Account page."""
