//! Creating the program's PDAs on first use, also when someone sent lamports to the address
//! first.
//!
//! Anchor's `init_if_needed` creates a pre-funded address with the system program's
//! `CreateAccountAllowPrefund`, which clusters without that instruction refuse ("invalid
//! instruction data"). Since every PDA address is predictable, anyone could then block the
//! creation of an epoch record, a ledger, a claim record or a credit account for the price of a
//! rent-exempt transfer, and with it voting, sealing, claiming or buying. The accounts here are
//! created with the long-standing `CreateAccount`, or `Transfer` + `Allocate` + `Assign` when the
//! address already holds lamports.

use anchor_lang::prelude::*;
use anchor_lang::system_program;
use anchor_lang::Discriminator;

/// Creates the PDA `info` (signed with `signer_seeds`, which end with the bump) with `space`
/// bytes owned by `owner`, rent paid by `payer`. The address must not hold an account yet (it
/// may hold lamports).
pub fn create_pda<'info>(
    info: &AccountInfo<'info>,
    payer: &AccountInfo<'info>,
    system_program: &AccountInfo<'info>,
    signer_seeds: &[&[u8]],
    space: usize,
    owner: &Pubkey,
) -> Result<()> {
    // An account that is not the system program's already exists (an existing deployment, say).
    require_keys_eq!(
        *info.owner,
        system_program::ID,
        ErrorCode::AccountNotSystemOwned
    );
    let rent = Rent::get()?.minimum_balance(space);
    let signer = &[signer_seeds];
    let funded = info.lamports();
    if funded == 0 {
        return system_program::create_account(
            CpiContext::new_with_signer(
                system_program.key(),
                system_program::CreateAccount {
                    from: payer.clone(),
                    to: info.clone(),
                },
                signer,
            ),
            rent,
            space as u64,
            owner,
        );
    }
    // Someone sent lamports to the address first: top up, allocate and assign instead.
    let shortfall = rent.saturating_sub(funded);
    if shortfall > 0 {
        system_program::transfer(
            CpiContext::new(
                system_program.key(),
                system_program::Transfer {
                    from: payer.clone(),
                    to: info.clone(),
                },
            ),
            shortfall,
        )?;
    }
    system_program::allocate(
        CpiContext::new_with_signer(
            system_program.key(),
            system_program::Allocate {
                account_to_allocate: info.clone(),
            },
            signer,
        ),
        space as u64,
    )?;
    system_program::assign(
        CpiContext::new_with_signer(
            system_program.key(),
            system_program::Assign {
                account_to_assign: info.clone(),
            },
            signer,
        ),
        owner,
    )
}

/// Loads the account of type `T` at `info`, or creates it (see [`create_pda`]) and returns the
/// all-zero value a fresh account decodes to, with `true`. The caller has checked that `info`
/// is the PDA of `signer_seeds`; an existing account must be a `T` of this program. The value is
/// boxed to keep it off the handlers' stack frames.
pub fn load_or_create<'info, T>(
    info: &AccountInfo<'info>,
    payer: &AccountInfo<'info>,
    system_program: &AccountInfo<'info>,
    signer_seeds: &[&[u8]],
    space: usize,
    program_id: &Pubkey,
) -> Result<(Box<T>, bool)>
where
    T: AccountDeserialize + Discriminator,
{
    if info.owner == program_id {
        let value = T::try_deserialize(&mut &info.try_borrow_data()?[..])?;
        return Ok((Box::new(value), false));
    }
    create_pda(info, payer, system_program, signer_seeds, space, program_id)?;
    let mut fresh = vec![0u8; space];
    let tag = T::DISCRIMINATOR;
    fresh
        .get_mut(..tag.len())
        .ok_or(ErrorCode::AccountDidNotSerialize)?
        .copy_from_slice(tag);
    Ok((Box::new(T::try_deserialize(&mut &fresh[..])?), true))
}

/// Writes `value` (with its discriminator) back into `info`.
pub fn store<T: AccountSerialize>(value: &T, info: &AccountInfo) -> Result<()> {
    let mut data = info.try_borrow_mut_data()?;
    let mut writer: &mut [u8] = &mut data;
    value.try_serialize(&mut writer)
}
