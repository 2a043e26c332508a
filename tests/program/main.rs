//! The program's tests, through real transactions in a real bank. One module per instruction.

mod smoke;
