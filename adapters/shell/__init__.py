"""The terminal adapter: try every command with no chat platform at all."""
