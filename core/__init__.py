"""Shared machinery at the bottom of JIM's layers: modules any app may import, which
import no app themselves."""
