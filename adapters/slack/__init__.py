"""Slack: a slack-bolt app (HTTP and Socket Mode). See render.py for how replies look."""
