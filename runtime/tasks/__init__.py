"""The model tasks: an action's config + rendered input → an engine request → a result."""
