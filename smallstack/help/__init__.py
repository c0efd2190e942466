"""Help & Docs: Markdown documents shipped with the project (and a project's own), rendered as
staff pages with a table of contents and a search, and summed up on a dashboard card."""
