"""Fly-side logic of the day-to-day verbs beyond deploys (certificates, scale, secrets):
what to ask Fly, what its answers mean, and the rows that remember them."""
