"""Login protection and security events: failed-login lockout (django-axes), the staff second
factor in the tenant admin (django-otp, TOTP), foreign-token detection, and personal data kept
out of logs and error reports."""
