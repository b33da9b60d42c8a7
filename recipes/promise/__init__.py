"""SlapOS promise plugins of the mail bundle (``slapos.cookbook:promise.plugin``
with ``module = recipes.promise.<name>``)."""
