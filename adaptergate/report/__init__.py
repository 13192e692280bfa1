"""Reports: the decision rendered for terminals, Markdown (PR comment, check run, step summary), JSON and JUnit, from Jinja templates shipped here."""
