"""The recipe library: paper-cited repairs for a broken slice, their recorded applications and measured efficacy."""
