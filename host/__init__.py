"""presil.host"""
