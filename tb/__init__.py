"""presil.tb"""
