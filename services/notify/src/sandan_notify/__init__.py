"""sandan notify: residents, members, branch secretaries, offices and units hear what concerns them, once."""
