"""tollguard.state"""
