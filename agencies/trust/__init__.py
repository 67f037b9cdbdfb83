"""Keys and trust: a bureau's key store (keys.py) and the signed trust list with its follower (trust_list.py)."""
