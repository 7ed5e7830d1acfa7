"""dispatch: the branch and members' side of the three orders (支部下单, 党员接单)."""
