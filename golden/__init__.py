"""presil.golden"""
