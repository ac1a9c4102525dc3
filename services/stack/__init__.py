"""The local stack: every platform process started, checked and stopped from one place."""
