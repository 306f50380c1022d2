//! An OTP-style supervisor actor for actix (filled in by the supervisor issue).
