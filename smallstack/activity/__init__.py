"""Activity: a log of the requests the site answered, its dashboard card and its page."""
