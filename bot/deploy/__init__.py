"""Deploys: stage config reading (flytoml), plans, images and the roll-out engine.

Nothing is imported here: `flybot run` loads these modules on the first command that needs
them (tests/runtime/test_lean_start.py), so import the module you use.
"""
