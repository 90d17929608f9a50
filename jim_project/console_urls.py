"""URLs of the console pages (dashboard, live activity, MVO, history)."""

urlpatterns: list = []
