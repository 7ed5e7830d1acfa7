"""sandan intake: the residents' side of the three orders (居民点单). Personal data lives only here."""
