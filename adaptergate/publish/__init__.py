"""Publishing a report where reviewers read it (GitHub: sticky comment and check run)."""
