"""Shared machinery at the bottom of JIM's layers: bulk writes, write-behind, the
garbage-collector pause, encryption of secrets, settings from the environment, DN
escaping. It imports no app of JIM."""
