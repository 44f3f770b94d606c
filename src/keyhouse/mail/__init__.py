"""The e-mail Keyhouse sends: Jinja2 templates per kind and language, rendered to text and HTML."""
