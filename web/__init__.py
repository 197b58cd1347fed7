"""通办 web: the REST API and the staff, window, applicant and manager pages (FastAPI + Jinja2 + htmx)."""
