"""Users: the accounts card and the user model in the Explorer (read-only, password hidden).

Works with any user model (``get_user_model()``): figures and columns a model lacks are left out.
"""
